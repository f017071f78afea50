"""The static site: serving policy, what the templates get, the chart, the renderer, a build on disk."""
