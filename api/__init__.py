"""The HTTP layer: blueprints under /api (registered by routes.py), request parsing and JSON errors."""
