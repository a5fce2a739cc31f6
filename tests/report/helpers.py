"""Reading a report page back: its ids, elements, external references and scripts."""

from __future__ import annotations

from html.parser import HTMLParser


class Page(HTMLParser):
    """Elements of an HTML page: ids, every element's attributes in order, the external
    references (src/href not data: or #) and the script elements."""

    def __init__(self, html: str):
        super().__init__()
        self.ids, self.elements, self.external, self.scripts = set(), [], [], []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.elements.append((tag, attrs))
        if "id" in attrs:
            self.ids.add(attrs["id"])
        for key in ("src", "href"):
            value = attrs.get(key) or ""
            if value and not value.startswith(("data:", "#")):
                self.external.append(value)
        if tag == "script":
            self.scripts.append(attrs)

    def values(self, attribute: str) -> dict:
        """``{attribute value: data-value}`` of the first element carrying each value."""
        out = {}
        for _, attrs in self.elements:
            if attribute in attrs and attrs[attribute] not in out:
                out[attrs[attribute]] = attrs.get("data-value")
        return out


def figures_of(html: str) -> dict:
    """The interactive page's figures (plotly dicts by chart id)."""
    import json

    start = html.index('<script type="application/json" id="report-figures">')
    start = html.index(">", start) + 1
    return json.loads(html[start:html.index("</script>", start)])


def rows_of(page: Page, row_attribute: str, cell_attribute: str) -> dict:
    """``{row key: {cell key: float(data-value)}}`` of a table whose rows carry
    ``row_attribute`` and whose cells carry ``cell_attribute``."""
    rows, current = {}, None
    for tag, attrs in page.elements:
        if tag == "tr":
            current = attrs.get(row_attribute)
        elif current is not None and cell_attribute in attrs:
            rows.setdefault(current, {})[attrs[cell_attribute]] = float(attrs["data-value"])
    return rows
