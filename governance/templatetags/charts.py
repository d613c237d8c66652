"""Charts drawn on the server as inline SVG: nothing to download, nothing from outside the app, readable without
JavaScript, and each chart carries its figures as text for screen readers (a table beside it in the page).

    {% load charts %}
    {% line_chart trend "on_time_rate" "satisfaction_rate" %}   rates 0–1 by month, one line each
    {% bar_chart rows "count" "label" %}                        horizontal bars
"""

from django import template
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

register = template.Library()

COLOURS = ("#0b5cad", "#1e7d32", "#b22222", "#8a4b00")


@register.simple_tag
def line_chart(rows, *keys, width=460, height=210, labels=""):
    """Lines of rates (0–1, None = no figure that month) over `rows` (dicts with "month"), one per key."""
    rows = list(rows or [])
    if not rows:
        return ""
    left, right, top, bottom = 42, 24, 26, 30
    plot_w, plot_h = width - left - right, height - top - bottom
    step = plot_w / max(len(rows) - 1, 1)
    names = labels.split("|") if labels else list(keys)
    parts = []
    for tick in (0, 0.5, 1):
        y = top + plot_h * (1 - tick)
        parts.append(
            format_html(
                '<line x1="{}" y1="{}" x2="{}" y2="{}" class="grid"/><text x="{}" y="{}" class="axis">{}%</text>',
                left,
                y,
                width - right,
                y,
                4,
                y + 4,
                int(tick * 100),
            )
        )
    for i, row in enumerate(rows):
        if i % 2 == 0 or i == len(rows) - 1:
            parts.append(
                format_html(
                    '<text x="{}" y="{}" class="axis" text-anchor="middle">{}</text>',
                    left + i * step,
                    height - 8,
                    str(row["month"])[2:],
                )
            )
    for n, key in enumerate(keys):
        colour = COLOURS[n % len(COLOURS)]
        points = [
            (left + i * step, top + plot_h * (1 - row[key])) for i, row in enumerate(rows) if row.get(key) is not None
        ]
        if len(points) > 1:
            parts.append(
                format_html(
                    '<polyline points="{}" fill="none" stroke="{}" stroke-width="3"/>',
                    " ".join(f"{x:.1f},{y:.1f}" for x, y in points),
                    colour,
                )
            )
        parts.append(
            format_html_join(
                "", '<circle cx="{}" cy="{}" r="4" fill="{}"/>', ((f"{x:.1f}", f"{y:.1f}", colour) for x, y in points)
            )
        )
        parts.append(
            format_html(
                '<rect x="{}" y="{}" width="12" height="12" fill="{}"/><text x="{}" y="{}" class="legend">{}</text>',
                left + n * 150,
                4,
                colour,
                left + 18 + n * 150,
                15,
                names[n] if n < len(names) else key,
            )
        )
    return format_html(
        '<svg class="chart" viewBox="0 0 {} {}" role="img" aria-label="{}">{}</svg>',
        width,
        height,
        " / ".join(names),
        mark_safe("".join(str(p) for p in parts)),
    )


@register.simple_tag
def bar_chart(rows, value_key, label_key, width=460, bar=24):
    """Horizontal bars of `value_key` labelled by `label_key`, the longest bar the largest value."""
    rows = [r for r in (rows or []) if r]
    if not rows:
        return ""
    most = max((r.get(value_key) or 0) for r in rows) or 1
    label_w, gap = 120, 6
    height = len(rows) * (bar + gap)
    parts = []
    for i, r in enumerate(rows):
        value = r.get(value_key) or 0
        y = i * (bar + gap)
        length = (width - label_w - 60) * value / most
        parts.append(
            format_html(
                '<text x="{}" y="{}" class="label" text-anchor="end">{}</text>'
                '<rect x="{}" y="{}" width="{}" height="{}" rx="4" class="bar"/>'
                '<text x="{}" y="{}" class="value">{}</text>',
                label_w - 8,
                y + bar * 0.7,
                r.get(label_key),
                label_w,
                y,
                f"{max(length, 2):.1f}",
                bar,
                f"{label_w + length + 6:.1f}",
                y + bar * 0.7,
                value,
            )
        )
    return format_html(
        '<svg class="chart bars" viewBox="0 0 {} {}" role="img" aria-hidden="true">{}</svg>',
        width,
        height,
        mark_safe("".join(str(p) for p in parts)),
    )
