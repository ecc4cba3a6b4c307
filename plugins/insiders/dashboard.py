"""Old import path of `insiders.dashboards.page` (the static dashboard page)."""

from insiders.dashboards.page import (  # noqa: F401
    DashboardError,
    format_value,
    query_cards,
    render_card,
    render_dashboard,
    render_page,
    run_card_sql,
)
