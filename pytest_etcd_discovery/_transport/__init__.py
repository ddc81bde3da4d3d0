"""How requests reach the service: the live server on a loopback socket (with Go's
framing) and in-process interception of client libraries.
"""
