"""The report a marketer reads: the funnel, freshness, segments, RFM, clusters, campaigns, publications
and consent coverage on one self-contained HTML page (docs/report.md).

model.py holds what the page shows, compute.py fills it with plain functions over the Warehouse and
DocumentStore ports (SQL in sql/report/), charts.py draws SVG, render.py writes the page, and
fonts.py embeds the Hangul font its text needs.
"""
