"""The REST API controllers, one module per resource."""
