"""The reproduction report: run records (collect), statistics (stats), the claim ledger
against paper.yaml (claims), figures (plots) and the renderer (render). No torch import
at module level, so the report commands start fast."""
