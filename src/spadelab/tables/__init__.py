"""Results tables: experiment files (``spec``), run dirs (``rundirs``), statistics over seeds
(``stats``), charts (``chart``), ``spadelab sweep`` (``sweep``) and ``spadelab report``
(``report``). Imports run one way: spec <- rundirs <- report (uses stats, chart) <- sweep."""
