"""The business rules of the Postman collection: what each endpoint's answer must satisfy beyond its status
and its schema, as the JavaScript of a Postman test (``pm.test("rule: ...")``).

A rule is an invariant of the answer that holds for any warehouse, not a figure of one sample: parts add up
to their total (asked from the service in the same request's test, with ``pm.sendRequest``), ranks follow
the order, shares add up to 100, a forecast has as many points as its horizon and ``lo <= forecast <= hi``,
a segment name is one of the model's (read once per service by the collection's pre-request script).

The rule's code sees ``body`` (the answer: parsed JSON, or the text of a download) and the helpers below;
code that asks the service a second question (``ask``) is an asynchronous test and calls ``done``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from textwrap import dedent

# ------------------------------------------------------------------------------------------------ helpers

HELPERS: dict[str, str] = {
    "near": dedent(
        """\
        const near = (a, b, what) => pm.expect(Math.abs((a || 0) - (b || 0)), `${what}: ${a} against ${b}`)
            .to.be.at.most(1e-6 * Math.max(1, Math.abs(a || 0), Math.abs(b || 0)));"""
    ),
    "sumOf": "const sumOf = (rows, key) => rows.reduce((total, row) => total + (row[key] || 0), 0);",
    "inOrder": dedent(
        """\
        const inOrder = (values, direction, what) => values.forEach((value, i) => {
            if (i > 0 && value !== null && values[i - 1] !== null) {
                const turn = direction === "desc" ? "rises" : "falls";
                pm.expect(direction === "desc" ? value <= values[i - 1] : value >= values[i - 1],
                    `${what} ${turn} at row ${i}: ${values[i - 1]} then ${value}`).to.be.true;
            }
        });"""
    ),
    "distinct": dedent(
        """\
        const distinct = (values, what) => {
            const seen = new Set();
            values.forEach((value) => {
                pm.expect(seen.has(value), `${what} ${value} repeats`).to.be.false;
                seen.add(value);
            });
        };"""
    ),
    "ranked": dedent(
        """\
        const ranked = (rows) =>
            rows.forEach((row, i) => pm.expect(row.rank, `rank of row ${i}`).to.equal(i + 1));"""
    ),
    "atMostN": dedent(
        """\
        const atMostN = () =>
            pm.expect(body.rows.length, `rows (n = ${body.params.n})`).to.be.at.most(body.params.n);"""
    ),
    "sent": "const sent = () => JSON.parse(pm.variables.replaceIn(pm.request.body.raw));",
    "known": dedent(
        """\
        const known = (name) => {
            const value = pm.collectionVariables.get(name);
            const where = `${name} (read from the service by the collection's pre-request script)`;
            pm.expect(value, where).to.be.a("string").that.is.not.empty;
            return JSON.parse(value);
        };"""
    ),
    "sameFilters": dedent(
        """\
        const sameFilters = () => {
            // The request's report filters (members, start, end): what every report of sales accepts.
            const on = pm.request.url.query.all().filter((p) => !p.disabled
                && (Array.isArray(body.params[p.key]) || ["start", "end"].includes(p.key)));
            return on.length ? "?" + on.map((p) => `${p.key}=${encodeURIComponent(p.value)}`).join("&") : "";
        };"""
    ),
    "sameQuery": dedent(
        """\
        const sameQuery = () => { const q = pm.request.url.getQueryString(); return q ? `?${q}` : ""; };"""
    ),
    "filtersOf": dedent(
        """\
        const filtersOf = () => {
            // The request's report filters as a query of the semantic layer (POST /analytics/query).
            const query = { measures: ["revenue"], filters: [] };
            const on = pm.request.url.query.all().filter((p) => !p.disabled);
            const start = on.find((p) => p.key === "start"), end = on.find((p) => p.key === "end");
            if (start || end) {
                pm.expect(start && end, "start and end both (a one-sided range is not checked)").to.be.ok;
                query.time_dimension = { date_range: [start.value, end.value] };
            }
            const members = {};
            on.filter((p) => Array.isArray(body.params[p.key]))  // the member filters: lists
                .forEach((p) => { (members[p.key] = members[p.key] || []).push(p.value); });
            Object.entries(members)
                .forEach(([member, values]) => query.filters.push({ member, operator: "in", values }));
            return query;
        };"""
    ),
    "ask": dedent(
        """\
        const ask = (method, path, payload, done, check) => pm.sendRequest({
            url: pm.variables.replaceIn("{{baseUrl}}") + path,
            method,
            header: { "x-api-key": pm.variables.replaceIn("{{apiKey}}"), "Content-Type": "application/json" },
            body: payload === null ? undefined : { mode: "raw", raw: JSON.stringify(payload) },
        }, (error, answer) => {
            try {
                pm.expect(error, `${method} ${path}`).to.equal(null);
                pm.expect(answer.code, `${method} ${path}: ${answer.text().slice(0, 300)}`).to.equal(200);
                check(answer);
                done();
            } catch (failure) {
                done(failure);
            }
        });"""
    ),
    "csvRows": dedent(
        """\
        const csvRows = (text) => {
            // RFC 4180: fields may be quoted, with "" for a quote and line breaks inside quotes.
            const rows = [[]];
            let field = "", quoted = false;
            for (let i = 0; i < text.length; i++) {
                const c = text[i];
                if (quoted) {
                    if (c === '"' && text[i + 1] === '"') { field += '"'; i++; }
                    else if (c === '"') quoted = false;
                    else field += c;
                } else if (c === '"') quoted = true;
                else if (c === ",") { rows[rows.length - 1].push(field); field = ""; }
                else if (c === "\\n" || c === "\\r") {
                    if (c === "\\r" && text[i + 1] === "\\n") i++;
                    rows[rows.length - 1].push(field); field = ""; rows.push([]);
                } else field += c;
            }
            if (field !== "" || rows[rows.length - 1].length) rows[rows.length - 1].push(field);
            else rows.pop();
            return rows;
        };"""
    ),
    "firstDay": dedent(
        """\
        const firstDay = (iso, grain) => {
            const day = new Date(`${iso}T00:00:00Z`);
            if (grain === "week") return day.getUTCDay() === 1;
            if (grain === "month") return day.getUTCDate() === 1;
            if (grain === "quarter") return day.getUTCDate() === 1 && day.getUTCMonth() % 3 === 0;
            return !Number.isNaN(day.getTime());
        };"""
    ),
}
"""Functions a rule may call; a test script defines those its rules use (and those they use in turn)."""


def helpers_for(code: str) -> list[str]:
    """The helper definitions ``code`` needs, dependencies first."""
    needed: list[str] = []

    def visit(text: str) -> None:
        for name, definition in HELPERS.items():
            if name not in needed and re.search(rf"\b{name}\(", text):
                visit(definition.split("=", 1)[1])
                needed.append(name)

    visit(code)
    return [HELPERS[name] for name in needed]


@dataclass(frozen=True)
class Rule:
    """One business rule: a Postman test named ``rule: <title>``."""

    title: str
    code: str

    @property
    def asks(self) -> bool:
        """Whether it asks the service a second question (an asynchronous test that calls ``done``)."""
        return bool(re.search(r"\bask\(", self.code))


def rule(title: str, code: str) -> Rule:
    return Rule(title, dedent(code).strip())


def js(value: object) -> str:
    """A JavaScript literal of ``value``."""
    return json.dumps(value)


# ---------------------------------------------------------------------------------------- rule builders


def unique(*columns: str) -> Rule:
    key = ' + "|" + '.join(f"row[{js(c)}]" for c in columns)
    what = " and ".join(columns)
    return rule(f"each {what} appears once", f"distinct(body.rows.map((row) => {key}), {js(what)});")


def ordered(column: str, direction: str = "desc") -> Rule:
    word = "highest" if direction == "desc" else "lowest"
    return rule(
        f"rows come {word} {column} first",
        f"inOrder(body.rows.map((row) => row[{js(column)}]), {js(direction)}, {js(column)});",
    )


def ranks(column: str = "revenue", direction: str = "desc") -> Rule:
    word = "highest" if direction == "desc" else "lowest"
    return rule(
        f"ranks run 1, 2, ... from the {word} {column}",
        f"""
        ranked(body.rows);
        inOrder(body.rows.map((row) => row[{js(column)}]), {js(direction)}, {js(column)});
        """,
    )


def top_n() -> Rule:
    return rule("no more rows than n", "atMostN();")


def shares(column: str = "share_pct", of: str = "revenue") -> Rule:
    return rule(
        f"each {column} is its {of} over the rows' total, and they add up to 100",
        f"""
        const total = sumOf(body.rows, {js(of)});
        body.rows.forEach((row) => near(
            row[{js(column)}], total ? 100 * row[{js(of)}] / total : null,
                `{column} of ${{JSON.stringify(row)}}`));
        if (total) near(sumOf(body.rows, {js(column)}), 100, "sum of {column}");
        """,
    )


def adds_up_to_total_revenue() -> Rule:
    return rule(
        "the rows' revenue adds up to kpi-total-revenue with the same parameters",
        """
        ask("GET", `/analytics/reports/kpi-total-revenue${sameFilters()}`, null, done, (answer) =>
            near(sumOf(body.rows, "revenue"), answer.json().rows[0].revenue, "sum of revenue"));
        """,
    )


def adds_up_to_trade_revenue() -> Rule:
    return rule(
        "the rows' revenue adds up to the revenue of the lines with a distributor (POST /analytics/query)",
        """
        const query = filtersOf();
        query.filters.push({ member: "distributor", operator: "set" });
        ask("POST", "/analytics/query", query, done, (answer) =>
            near(sumOf(body.rows, "revenue"), answer.json().rows[0].revenue, "sum of revenue"));
        """,
    )


def periods_start(grain: str) -> Rule:
    return rule(
        f"each period is the first day of its {grain}",
        f"body.rows.forEach((row) => pm.expect(firstDay(row.period, {js(grain)}), row.period).to.be.true);",
    )


def grouped_within(first: str, then: str) -> Rule:
    return rule(
        f"rows come by {first}, then highest {then} first",
        f"""
        body.rows.forEach((row, i) => {{
            if (i === 0) return;
            const before = body.rows[i - 1];
            const inGroupOrder = String(row[{js(first)}]) >= String(before[{js(first)}]);
            pm.expect(inGroupOrder, `{first} order at row ${{i}}`).to.be.true;
            if (row[{js(first)}] === before[{js(first)}]) {{
                pm.expect(row[{js(then)}], `{then} at row ${{i}}`).to.be.at.most(before[{js(then)}]);
            }}
        }});
        """,
    )


def probability(column: str = "probability_alive") -> Rule:
    return rule(
        f"each {column} is a probability (0 to 1)",
        f"""
        body.rows.forEach((row) =>
            pm.expect(row[{js(column)}], `{column} of ${{row.customer}}`).to.be.within(0, 1));
        """,
    )


def goal_attainment() -> Rule:
    return rule(
        "goal_attainment_pct is revenue / goal_to_date, and goal_to_date is at most the goal",
        """
        body.rows.filter((row) => row.goal_to_date).forEach((row) => {
            const what = JSON.stringify(row);
            const attainment = 100 * (row.revenue || 0) / row.goal_to_date;
            near(row.goal_attainment_pct, attainment, `attainment of ${what}`);
            pm.expect(row.goal_to_date, `goal_to_date of ${what}`).to.be.at.most(row.goal * (1 + 1e-9));
        });
        """,
    )


# ------------------------------------------------------------------------------------------- the reports

_PLACES = {"sales-by-country": "country", "sales-by-region": "region", "sales-by-city": "city"}
_PLACES |= {"sales-by-zip": "zip", "sales-by-state": "state"}

REPORT_RULES: dict[str, list[Rule]] = {
    **{
        f"sales-by-category-{label}": [
            unique("period", "category"),
            *([periods_start(grain)] if grain != "day" else []),
            adds_up_to_total_revenue(),
        ]
        for label, grain in (
            ("daily", "day"),
            ("weekly", "week"),
            ("monthly", "month"),
            ("quarterly", "quarter"),
        )
    },
    **{
        name: [unique(place), ordered("revenue"), adds_up_to_total_revenue()]
        for name, place in _PLACES.items()
    },
    "sales-by-state-zip": [
        unique("state", "zip"),
        grouped_within("state", "revenue"),
        adds_up_to_total_revenue(),
    ],
    "sales-by-product": [unique("product"), ordered("revenue"), adds_up_to_total_revenue()],
    "sales-by-distributor": [unique("distributor"), ordered("revenue"), adds_up_to_trade_revenue()],
    "distributor-sales-by-state": [
        unique("distributor", "state"),
        grouped_within("distributor", "revenue"),
        adds_up_to_trade_revenue(),
    ],
    "distributor-sales-by-product": [
        unique("distributor", "product"),
        grouped_within("distributor", "revenue"),
        adds_up_to_trade_revenue(),
    ],
    "distributor-ranking": [ranks(), shares(), adds_up_to_trade_revenue()],
    **{
        f"{direction}-{entity}": [
            top_n(),
            unique(column),
            ranks("revenue", "desc" if direction == "top" else "asc"),
        ]
        for entity, column in (
            ("products", "product"),
            ("states", "state"),
            ("zips", "zip"),
            ("customers", "customer"),
            ("salesmen", "salesman"),
        )
        for direction in ("top", "bottom")
    },
    "kpi-total-revenue": [
        rule(
            "the revenue is the semantic layer's (POST /analytics/query with the same filters)",
            """
            ask("POST", "/analytics/query", filtersOf(), done, (answer) =>
                near(body.rows[0].revenue, answer.json().rows[0].revenue, "revenue"));
            """,
        ),
        rule(
            "with a previous period, revenue_change is revenue - revenue_previous",
            """
            const row = body.rows[0];
            if ("revenue_previous" in row && row.revenue_previous !== null) {
                near(row.revenue_change, row.revenue - row.revenue_previous, "revenue_change");
            }
            """,
        ),
    ],
    "kpi-average-order-value": [
        rule(
            "average_order_value is revenue / orders",
            """
            const row = body.rows[0];
            pm.expect(body.rows).to.have.lengthOf(1);
            if (row.orders) near(row.average_order_value, row.revenue / row.orders, "average_order_value");
            """,
        )
    ],
    "kpi-mom-growth": [
        rule(
            "growth_pct compares revenue per selling day of this month to date and the same days a month "
            "before",
            """
            const row = body.rows[0];
            pm.expect(firstDay(row.period_start, "month"), "period_start").to.be.true;
            pm.expect(firstDay(row.previous_start, "month"), "previous_start").to.be.true;
            pm.expect(row.previous_start < row.period_start && row.period_start <= row.period_end).to.be.true;
            if (row.revenue_previous && row.selling_days && row.previous_selling_days) {
                const before = row.revenue_previous / row.previous_selling_days;
                const now = row.revenue / row.selling_days;
                near(row.growth_pct, 100 * (now - before) / Math.abs(before), "growth_pct");
            }
            """,
        )
    ],
    "kpi-retention-rate": [
        rule(
            "retained customers are some of the previous month's, and the rate is their share",
            """
            const row = body.rows[0];
            pm.expect(row.retained_customers).to.be.at.most(row.previous_customers);
            if (row.previous_customers) {
                const rate = 100 * row.retained_customers / row.previous_customers;
                near(row.retention_rate_pct, rate, "retention_rate_pct");
            }
            """,
        )
    ],
    "kpi-region-contribution": [ranks(), shares(), adds_up_to_total_revenue()],
    "kpi-revenue-run-rate": [
        rule(
            "run_rate = month_to_date / selling_days_elapsed x selling_days_in_month",
            """
            const row = body.rows[0];
            pm.expect(firstDay(row.month, "month"), "month").to.be.true;
            pm.expect(row.days_elapsed).to.be.at.most(row.days_in_month);
            pm.expect(row.selling_days_elapsed).to.be.at.most(row.selling_days_in_month);
            if (row.selling_days_elapsed) {
                const pace = row.month_to_date / row.selling_days_elapsed;
                near(row.run_rate, pace * row.selling_days_in_month, "run_rate");
            }
            """,
        )
    ],
    "kpi-active-salesmen": [
        rule(
            "active salesmen are some of the salesmen, active_pct their share, the week starts on a Monday",
            """
            const row = body.rows[0];
            pm.expect(row.active_salesmen).to.be.at.most(row.salesmen);
            if (row.salesmen) near(row.active_pct, 100 * row.active_salesmen / row.salesmen, "active_pct");
            pm.expect(firstDay(body.summary.week_start, "week"), "week_start").to.be.true;
            """,
        )
    ],
    "kpi-top-product-mover": [
        top_n(),
        ordered("velocity_change"),
        rule(
            "velocity is units per selling day, and its change is now - before",
            """
            body.rows.forEach((row) => {
                const days = body.summary;
                if (days.selling_days_now) {
                    const velocity = row.units_now / days.selling_days_now;
                    near(row.velocity_now, velocity, `velocity_now of ${row.product}`);
                }
                if (days.selling_days_before) {
                    const velocity = row.units_before / days.selling_days_before;
                    near(row.velocity_before, velocity, `velocity_before of ${row.product}`);
                }
                if (row.velocity_now !== null && row.velocity_before !== null) {
                    const change = row.velocity_now - row.velocity_before;
                    near(row.velocity_change, change, `velocity_change of ${row.product}`);
                }
            });
            """,
        ),
    ],
    "kpi-product-profitability": [
        top_n(),
        rule(
            "most (or least) profit first, and no margin above 100%",
            """
            const direction = body.params.direction === "least" ? "asc" : "desc";
            inOrder(body.rows.map((row) => row.profit), direction, "profit");
            body.rows.forEach((row) =>
                pm.expect(row.margin_pct === null || row.margin_pct <= 100, row.product).to.be.true);
            """,
        ),
    ],
    **{
        f"goal-attainment-by-{level}": [unique("period", level), goal_attainment()]
        for level in ("region", "salesman", "category", "product")
    },
    "sales-opportunities": [
        goal_attainment(),
        rule(
            "every row's attainment is within [low_pct, high_pct], highest first, "
            "gap_to_goal = goal_to_date - revenue",
            """
            body.rows.forEach((row) => {
                const what = JSON.stringify(row);
                const { low_pct: low, high_pct: high } = body.params;
                pm.expect(row.goal_attainment_pct, what).to.be.within(low, high);
                near(row.gap_to_goal, row.goal_to_date - (row.revenue || 0), `gap_to_goal of ${what}`);
            });
            inOrder(body.rows.map((row) => row.goal_attainment_pct), "desc", "goal_attainment_pct");
            """,
        ),
        rule(
            "the opportunities are exactly the months of goal-attainment-by-<level> within the band",
            """
            const { low_pct: low, high_pct: high, level } = body.params;
            const key = (row) => `${row.period} ${row[level]}`;
            const within = (row) => row.goal_attainment_pct !== null
                && row.goal_attainment_pct >= low && row.goal_attainment_pct <= high;
            const report = `/analytics/reports/goal-attainment-by-${level}${sameFilters()}`;
            ask("GET", report, null, done, (answer) =>
                pm.expect(body.rows.map(key).sort()).to.deep.equal(answer.json().rows.filter(within).map(key).sort()));
            """,
        ),
    ],
    "abc-classification": [
        unique("product"),
        ordered("revenue"),
        shares(),
        rule(
            "cumulative_pct climbs to 100, and the class is where a product's revenue starts: "
            "A < 80% <= B < 95% <= C",
            """
            body.rows.forEach((row, i) => {
                const before = i ? body.rows[i - 1].cumulative_pct : 0;
                near(row.cumulative_pct, before + row.share_pct, `cumulative_pct of ${row.product}`);
                const expected = before < 80 - 1e-9 ? "A" : before < 95 - 1e-9 ? "B" : "C";
                pm.expect(row.class, `class of ${row.product} (starts at ${before}%)`).to.equal(expected);
            });
            const last = body.rows[body.rows.length - 1];
            if (last) near(last.cumulative_pct, 100, "last cumulative_pct");
            """,
        ),
    ],
    "product-affinity": [
        top_n(),
        ordered("lift"),
        rule(
            "every pair passes the thresholds: orders_together, support, confidence (at most 100%) and lift",
            """
            const p = body.params;
            body.rows.forEach((row) => {
                const pair = `${row.product} + ${row.with_product}`;
                pm.expect(row.product, pair).to.not.equal(row.with_product);
                if (p.for_product) pm.expect(row.product, pair).to.equal(p.for_product);
                pm.expect(row.orders_together, pair).to.be.at.least(p.min_orders);
                pm.expect(row.support_pct, pair).to.be.at.least(p.min_support_pct);
                pm.expect(row.confidence_pct, pair).to.be.within(p.min_confidence_pct, 100);
                pm.expect(row.lift, pair).to.be.above(p.min_lift);
            });
            """,
        ),
    ],
    "slow-movers": [
        unique("product"),
        rule(
            "every product went at least `days` without a sale (or never sold), longest first, "
            "in its idle band",
            """
            const band = (days) => days === null ? "no sales" : days >= 90 ? "90+ days"
                : days >= 60 ? "60+ days" : days >= 30 ? "30+ days" : "under 30 days";
            body.rows.forEach((row) => {
                if (row.days_without_sales !== null) {
                    pm.expect(row.days_without_sales, row.product).to.be.at.least(body.params.days);
                }
                pm.expect(row.idle, row.product).to.equal(band(row.days_without_sales));
            });
            const days = body.rows.map((row) => row.days_without_sales);
            const sold = days.findIndex((d) => d !== null);
            if (sold >= 0) {
                pm.expect(days.slice(sold).includes(null), "never-sold products come first").to.be.false;
            }
            inOrder(days, "desc", "days_without_sales");
            """,
        ),
    ],
    "rfm-segments": [
        unique("segment"),
        shares("revenue_share_pct"),
        rule(
            "average revenue is revenue per customer of the segment",
            """
            body.rows.filter((row) => row.customers).forEach((row) =>
                near(row.average_revenue, row.revenue / row.customers, `average_revenue of ${row.segment}`));
            """,
        ),
    ],
    "new-vs-repeat-customers": [
        unique("period", "customer_type"),
        rule(
            "customers are new or repeat, and average_order_value is revenue / orders",
            """
            body.rows.forEach((row) => {
                pm.expect(row.customer_type).to.be.oneOf(["new", "repeat"]);
                const what = `average_order_value of ${row.period} ${row.customer_type}`;
                if (row.orders) near(row.average_order_value, row.revenue / row.orders, what);
            });
            """,
        ),
        adds_up_to_total_revenue(),
    ],
    "churn-risk": [
        top_n(),
        ordered("value_at_risk"),
        probability(),
        rule(
            "every customer is overdue (gap_ratio >= threshold) but not lost, with enough purchase days",
            """
            const p = body.params;
            body.rows.forEach((row) => {
                pm.expect(row.gap_ratio, row.customer).to.be.at.least(p.threshold - 1e-9);
                pm.expect(row.days_since_last_purchase, row.customer).to.be.at.most(p.lost_after_days);
                pm.expect(row.purchase_days, row.customer).to.be.at.least(p.min_purchase_days);
                if ("yearly_value_if_active" in row) {
                    const lost = (1 - row.probability_alive) * row.yearly_value_if_active;
                    near(row.value_at_risk, lost, `value_at_risk of ${row.customer}`);
                }
            });
            """,
        ),
    ],
    "customer-lifetime-value": [top_n(), ordered("lifetime_value"), probability()],
    "salesman-ranking": [
        ranks(),
        shares(),
        rule(
            "average_order_value is revenue / orders",
            """
            body.rows.filter((row) => row.orders).forEach((row) =>
                near(row.average_order_value, row.revenue / row.orders, `order value of ${row.salesman}`));
            """,
        ),
    ],
    "salesman-consistency": [
        unique("salesman"),
        ordered("coefficient_of_variation", "asc"),
        rule(
            "coefficient_of_variation = daily_std_dev / daily_mean, consistency_score = 100 / (1 + CV)",
            """
            const measured = body.rows
                .filter((row) => row.daily_mean && row.coefficient_of_variation !== null);
            measured.forEach((row) => {
                const cv = row.daily_std_dev / row.daily_mean;
                near(row.coefficient_of_variation, cv, `CV of ${row.salesman}`);
                near(row.consistency_score, 100 / (1 + cv), `score of ${row.salesman}`);
            });
            """,
        ),
    ],
    "seasonality": [
        rule(
            "each part of the cycle (the profile) comes once, in order",
            """
            const parts = body.rows.map((row) => row[body.params.profile]);
            parts.forEach((part, i) => pm.expect(part, `part ${i}`).to.equal(parts[0] + i));
            """,
        ),
        shares(),
    ],
    "underperformers": [
        ordered("gap_to_trend", "asc"),
        rule(
            "every row is below its trend or its peers by more than the tolerance; "
            "gap_to_trend = actual - expected",
            """
            const tolerance = body.params.tolerance_pct / 100;
            body.rows.forEach((row) => {
                const what = JSON.stringify(row);
                near(row.gap_to_trend, row.actual - row.expected_by_trend, `gap_to_trend of ${what}`);
                const below = row.actual < row.expected_by_trend * (1 - tolerance);
                pm.expect(row.below_trend, what).to.equal(below);
                pm.expect(row.below_trend || row.below_peers, what).to.be.true;
            });
            """,
        ),
    ],
    "revenue-change-explained": [
        rule(
            "the members' changes add up to the total change, their revenue to the current revenue",
            """
            near(sumOf(body.rows, "revenue_change"), body.summary.change, "sum of revenue_change");
            near(sumOf(body.rows, "revenue"), body.summary.current_revenue, "sum of revenue");
            near(body.summary.change, body.summary.current_revenue - body.summary.baseline_revenue, "change");
            if (body.summary.change) {
                near(sumOf(body.rows, "contribution_pct"), 100, "sum of contribution_pct");
            }
            inOrder(body.rows.map((row) => Math.abs(row.revenue_change)), "desc", "|revenue_change|");
            """,
        )
    ],
    **{
        f"{entity}-locations": [
            top_n(),
            ordered("revenue"),
            rule(
                "latitudes and longitudes are on Earth",
                f"""
                body.rows.forEach((row) => {{
                    if (row.latitude !== null) pm.expect(row.latitude, row.{entity}).to.be.within(-90, 90);
                    if (row.longitude !== null) {{
                        pm.expect(row.longitude, row.{entity}).to.be.within(-180, 180);
                    }}
                }});
                """,
            ),
        ]
        for entity in ("distributor", "customer")
    },
}
"""Rules of GET /analytics/reports/<name>, by report name."""


# ------------------------------------------------------------------------------------- the other routes


def catalogue_rule(report_names: list[str]) -> Rule:
    """GET /analytics/reports lists exactly the reports the OpenAPI document has a route for."""
    return rule(
        "the catalogue lists exactly the reports the OpenAPI document has routes for, "
        "each at /reports/<name>",
        f"""
        const names = body.reports.map((report) => report.name);
        distinct(names, "report");
        body.reports.forEach((report) => pm.expect(report.route).to.equal(`/reports/${{report.name}}`));
        pm.expect(names.slice().sort()).to.deep.equal({js(sorted(report_names))});
        """,
    )


FORECAST_RULES = [
    rule(
        "one series per key sent, in order, each with as many points as the horizon",
        """
        const request = sent();
        const horizon = request.horizon || { D: 28, W: 8, M: 3 }[request.freq || "D"];
        pm.expect(body.series.map((s) => s.series)).to.deep.equal(request.series);
        body.series.forEach((s) => pm.expect(s.points, `points of ${s.series}`).to.have.lengthOf(horizon));
        """,
    ),
    rule(
        "lo <= forecast <= hi for every interval, and a wider interval holds the narrower",
        """
        const levels = (sent().intervals || [80, 95]).slice().sort((a, b) => a - b);
        body.series.forEach((s) => s.points.forEach((point) => {
            const where = `${s.series} ${point.date}`;
            let lo = point.forecast, hi = point.forecast;
            levels.forEach((level) => {
                const low = point[`lo_${level}`], high = point[`hi_${level}`];
                pm.expect(low, `lo_${level} of ${where}`).to.be.a("number").and.at.most(lo + 1e-6);
                pm.expect(high, `hi_${level} of ${where}`).to.be.a("number").and.at.least(hi - 1e-6);
                lo = low; hi = high;
            });
        }));
        """,
    ),
    rule(
        "daily points are consecutive days from the day after history_until",
        """
        if ((sent().freq || "D") !== "D") return;
        const day = (iso, plus) =>
            new Date(Date.parse(`${iso}T00:00:00Z`) + plus * 86400000).toISOString().slice(0, 10);
        body.series.forEach((s) => s.points.forEach((point, i) =>
            pm.expect(point.date, `${s.series} point ${i}`).to.equal(day(body.history_until, i + 1))));
        """,
    ),
]

SEGMENT_RULES = [
    rule(
        "one answer per customer sent, in order, each in one of the model's segments (GET /segments)",
        """
        const request = sent();
        const segments = known("segments");
        pm.expect(body.customers).to.have.lengthOf((request.customer_ids || request.customers).length);
        if (request.customer_ids) {
            pm.expect(body.customers.map((c) => c.customer_id)).to.deep.equal(request.customer_ids);
        }
        body.customers.forEach((c) =>
            pm.expect(c.segment, `segment ${c.segment_id}`).to.equal(segments[c.segment_id]));
        """,
    )
]

PREDICT_RULES = [
    rule(
        "one prediction per customer sent, in order, for the horizon asked",
        """
        const request = sent();
        pm.expect(body.customers).to.have.lengthOf((request.customer_ids || request.customers).length);
        if (request.customer_ids) {
            pm.expect(body.customers.map((c) => c.customer_id)).to.deep.equal(request.customer_ids);
        }
        if (request.horizon_days) pm.expect(body.horizon_days).to.equal(request.horizon_days);
        """,
    ),
    rule(
        "probability_alive is a probability, expected_spend = expected_purchases x expected_purchase_value",
        """
        body.customers.forEach((c) => {
            pm.expect(c.probability_alive, c.customer_id).to.be.within(0, 1);
            const spend = c.expected_purchases * c.expected_purchase_value;
            near(c.expected_spend, spend, `expected_spend of ${c.customer_id}`);
            pm.expect(c.lifetime_value, c.customer_id).to.be.at.least(0);
        });
        """,
    ),
]

SEGMENTS_RULES = [
    rule(
        "segment ids and names are distinct, and customer and revenue shares add up to 1",
        """
        distinct(body.segments.map((s) => s.segment_id), "segment_id");
        distinct(body.segments.map((s) => s.segment), "segment");
        near(sumOf(body.segments, "customer_share"), 1, "sum of customer_share");
        near(sumOf(body.segments, "revenue_share"), 1, "sum of revenue_share");
        """,
    )
]

CUSTOMER_RULES = [
    rule(
        "the profile is the customer asked for, in one of the model's segments (GET /segments)",
        """
        const segments = known("segments");
        const asked = pm.request.url.path[pm.request.url.path.length - 1];
        pm.expect(body.customer_id).to.equal(decodeURIComponent(asked));
        const segment = body.segment;
        pm.expect(segment.name, `segment ${segment.segment_id}`).to.equal(segments[segment.segment_id]);
        pm.expect(body.prediction.probability_alive).to.be.within(0, 1);
        """,
    )
]

QUERY_RULES = [
    rule(
        "the columns are the dimensions and measures asked for",
        """
        const request = sent();
        const names = body.columns.map((c) => c.name);
        [...(request.dimensions || []), ...request.measures]
            .forEach((member) => pm.expect(names, member).to.include(member));
        if (request.limit) pm.expect(body.rows.length).to.be.at.most(request.limit);
        """,
    ),
    rule(
        "grouped rows add up to the same query without dimensions (revenue, units, lines, profit)",
        """
        const request = sent();
        const additive = request.measures.filter((m) => ["revenue", "units", "lines", "profit"].includes(m));
        if (request.limit || !additive.length) return done();
        const total = { measures: additive, filters: request.filters || [] };
        const range = (request.time_dimension || {}).date_range;
        if (range) total.time_dimension = { date_range: range };
        ask("POST", "/analytics/query", total, done, (answer) =>
            additive.forEach((m) => near(sumOf(body.rows, m), answer.json().rows[0][m], `sum of ${m}`)));
        """,
    ),
]

SALES_RULES = [
    rule(
        "every line is counted once (inserted, updated or unchanged), and re-sending the batch changes "
        "nothing",
        """
        const batch = sent();
        pm.expect(body.lines).to.equal(batch.lines.length);
        pm.expect(body.inserted + body.updated + body.unchanged).to.equal(body.lines);
        ask("POST", "/analytics/sales", batch, done, (answer) => {
            const again = answer.json();
            const counts = [again.inserted, again.updated, again.unchanged];
            pm.expect(counts, "inserted, updated, unchanged").to.deep.equal([0, 0, batch.lines.length]);
        });
        """,
    )
]

EXPORT_REPORT_RULES = [
    rule(
        "the CSV has the JSON report's columns and as many rows",
        """
        const name = pm.request.url.path[pm.request.url.path.length - 1].replace(/\\.csv$/, "");
        ask("GET", `/analytics/reports/${name}${sameQuery()}`, null, done, (answer) => {
            const report = answer.json(), rows = csvRows(body);
            pm.expect(rows[0]).to.deep.equal(report.columns.map((c) => c.name));
            pm.expect(rows.length - 1).to.equal(report.rows.length);
        });
        """,
    )
]

EXPORT_QUERY_RULES = [
    rule(
        "the CSV has the JSON query's columns and as many rows",
        """
        ask("POST", "/analytics/query", sent(), done, (answer) => {
            const result = answer.json(), rows = csvRows(body);
            pm.expect(rows[0]).to.deep.equal(result.columns.map((c) => c.name));
            pm.expect(rows.length - 1).to.equal(result.rows.length);
        });
        """,
    )
]

PROBE_RULE = rule(
    "a probe answers within a second (Kubernetes' default probe timeout)",
    "pm.expect(pm.response.responseTime).to.be.below(1000);",
)

OPERATION_RULES: dict[tuple[str, str], list[Rule]] = {
    ("post", "/forecast"): FORECAST_RULES,
    ("post", "/segment"): SEGMENT_RULES,
    ("post", "/predict/customers"): PREDICT_RULES,
    ("get", "/segments"): SEGMENTS_RULES,
    ("get", "/customers/{customer_id}"): CUSTOMER_RULES,
    ("post", "/analytics/query"): QUERY_RULES,
    ("post", "/analytics/sales"): SALES_RULES,
    ("get", "/export/report/{name}.{fmt}"): EXPORT_REPORT_RULES,
    ("post", "/export/query.{fmt}"): EXPORT_QUERY_RULES,
    ("get", "/healthz"): [PROBE_RULE],
    ("get", "/livez"): [PROBE_RULE],
    ("get", "/readyz"): [
        PROBE_RULE,
        rule(
            "ready means GET /health says ready",
            """
            ask("GET", "/health", null, done, (answer) => pm.expect(answer.json().status).to.equal("ready"));
            """,
        ),
    ],
    ("get", "/metrics"): [
        rule(
            "each route's request counter equals its duration histogram's count and +Inf bucket",
            """
            const samples = {};
            body.split("\\n").filter((line) => line && !line.startsWith("#")).forEach((line) => {
                const match = line.match(/^(\\w+)\\{(.*)\\} (\\S+)$/);
                if (!match || !/endpoint=/.test(match[2])) return;
                const labels = match[2].split(",").filter((l) => !/^(le|quantile)=/.test(l)).join(",");
                const le = (match[2].match(/le="([^"]+)"/) || [])[1];
                const bucket = le === "+Inf" ? "+Inf" : le ? `@${le}` : "";
                samples[`${match[1]}${bucket}{${labels}}`] = Number(match[3]);
            });
            const totals = Object.keys(samples).filter((k) =>
                k.startsWith("bentoml_service_request_total{") && !k.includes('endpoint="/metrics"'));
            pm.expect(totals, "request counters").to.not.be.empty;
            totals.forEach((key) => {
                const labels = key.slice(key.indexOf("{"));
                const histogram = "bentoml_service_request_duration_seconds";
                pm.expect(samples[`${histogram}_count${labels}`], `count ${labels}`).to.equal(samples[key]);
                const inf = samples[`${histogram}_bucket+Inf${labels}`];
                pm.expect(inf, `+Inf ${labels}`).to.equal(samples[key]);
            });
            """,
        )
    ],
    ("get", "/health"): [
        rule(
            "ready means a loaded warehouse with order lines and a version of every model",
            """
            if (body.status === "ready") {
                pm.expect(body.warehouse.loaded).to.be.true;
                pm.expect(body.warehouse.order_lines).to.be.above(0);
            }
            Object.entries(body.models)
                .forEach(([name, version]) => pm.expect(version, name).to.be.a("string").that.is.not.empty);
            """,
        )
    ],
    ("get", "/models"): [
        rule(
            "every model in service is a champion, at the version GET /health reports",
            """
            distinct(body.models.map((m) => m.name), "model");
            body.models.forEach((m) => pm.expect(m.alias, m.name).to.equal("champion"));
            ask("GET", "/health", null, done, (answer) => pm.expect(answer.json().models)
                .to.deep.equal(Object.fromEntries(body.models.map((m) => [m.name, m.version]))));
            """,
        )
    ],
    ("post", "/admin/reload"): [
        rule(
            "the reload reports every model in service at the version GET /models then serves",
            """
            const versions = (models) => Object.fromEntries(models.map((m) => [m.name, m.version]));
            ask("GET", "/models", null, done, (answer) =>
                pm.expect(versions(body.models)).to.deep.equal(versions(answer.json().models)));
            """,
        )
    ],
    ("get", "/admin/warehouse"): [
        rule(
            "the sales range is in order, and the order lines are those GET /health counts",
            """
            pm.expect(body.first_sale <= body.last_sale, `${body.first_sale}, ${body.last_sale}`).to.be.true;
            ask("GET", "/health", null, done, (answer) =>
                pm.expect(body.tables.order_lines).to.equal(answer.json().warehouse.order_lines));
            """,
        )
    ],
    ("get", "/analytics/meta"): [
        rule(
            "measures and dimensions are distinct, each measure has a format, the data's first day is "
            "before its last",
            """
            distinct(body.measures.map((m) => m.name), "measure");
            distinct(body.dimensions.map((d) => d.name), "dimension");
            body.measures.forEach((m) => pm.expect(m.format, m.name).to.be.a("string").that.is.not.empty);
            if (body.data.first_day) pm.expect(body.data.first_day <= body.data.last_day).to.be.true;
            """,
        )
    ],
    ("get", "/analytics/insights"): [
        rule(
            "at most n insights, distinct, the largest impact first, each pointing at its report",
            """
            pm.expect(body.insights.length).to.be.at.most(body.params.n);
            distinct(body.insights.map((i) => i.id), "insight");
            inOrder(body.insights.map((i) => i.impact), "desc", "impact");
            body.insights.forEach((i) =>
                pm.expect(i.link, i.id).to.match(new RegExp(`^/analytics/reports/${i.report}(\\\\?|$)`)));
            """,
        )
    ],
}
"""Rules of the routes other than the reports, by (method, path) as in the OpenAPI document."""


def error_rule(field: str, *words: str) -> Rule:
    """A refusal names what is wrong: a problem on ``field`` whose message says ``words``."""
    said = f" and says {', '.join(repr(w) for w in words)}" if words else ""
    return rule(
        f"the error names the field {field}{said}",
        f"""
        const problem = body.detail.find((p) => p.field === {js(field)});
        pm.expect(problem, `a problem on {field} in ${{JSON.stringify(body.detail)}}`).to.be.an("object");
        {" ".join(f"pm.expect(problem.message).to.include({js(w)});" for w in words)}
        """,
    )
