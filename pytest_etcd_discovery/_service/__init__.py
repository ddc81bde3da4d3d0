"""The discovery service itself, free of any transport.

One entry point, :meth:`DiscoveryService.answer <.discovery.DiscoveryService.answer>`:
a plain :class:`~.messages.ServiceRequest` in, a plain :class:`~.messages.Reply` out. Its parts,
one module per concept:

- :mod:`.discovery`: the service (routing once, the journal, faults, the endpoints);
- :mod:`.messages`: the request and reply types;
- :mod:`.routes`: the :class:`~.routes.Route` of a request, after Go's path cleaning;
- :mod:`.keys`: the etcd v2 keys API (what the original service proxies to);
- :mod:`.profiles`: the real services imitated, each an object with its behaviour;
- :mod:`.faults`: fault rules and plans, which decide what a request gets;
- :mod:`.journal`, :mod:`.metrics`: what was asked, and ``/metrics``;
- :mod:`.go_net_http`, :mod:`.forms`, :mod:`.go_json`: Go's path cleaning, redirects,
  ``http.Error``, form parsing and JSON;
- :mod:`.app`: :class:`~.app.DiscoveryApp`, the service as a WSGI application;
- :mod:`.control`, :mod:`.control_v3`, :mod:`.control_io`, :mod:`.openapi`,
  :mod:`.changes`: the control API under ``/_fake/`` (its etcd v3 routes, its JSON in
  and out), its OpenAPI description and the dashboard's poll of what changed.

It sits on :mod:`.._v2store` and knows no transport: :mod:`.._transport` carries requests
to it.
"""
