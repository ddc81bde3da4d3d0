"""The discovery service itself: routes, the keys API, profiles, faults, metrics and the
Go compatibility helpers (JSON, forms, path cleaning).  It sits on :mod:`..v2store`
and knows no transport; :mod:`..transport` carries requests to it.
"""
