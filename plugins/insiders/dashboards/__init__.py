"""The dashboards layer: the dashboard as code and its two renderers.

- `spec.py`: `metabase/dashboard.json` and the card SQL files, checked (`load_definition`);
- `metabase.py`: a session over Metabase's REST API and the provisioning report;
- `provision.py`: make a Metabase match the files (`provision`, `provision_configured`);
- `page.py`: the same cards as one static HTML page, without Metabase (`render_dashboard`);
- `htmlkit.py`: escaping, base CSS and plotly embedding shared with the report.
"""
