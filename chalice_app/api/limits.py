"""The API's query limits, shared by the routes and the site's API page (no Chalice import here)."""

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
MAX_Q_LENGTH = 200
