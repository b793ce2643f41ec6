"""HTTP: the app factory, auth dependencies, problem+json errors, middleware.

Routes live with their contexts; this package only wires them and holds what every side shares.
"""
