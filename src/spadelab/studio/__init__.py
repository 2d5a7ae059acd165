"""The browser side of spadelab: the studio (paint a label map, see the generator's image) and
the paper's Table 2 preference study (pairs, raters, votes in SQLite, the report).

Both are FastAPI apps with a small static page in ``static/`` (vanilla JS, system fonts): the
pages fetch nothing from the network, and their JSON APIs are tested exactly.
"""
