"""Real etcd and the real discovery service as processes: the oracle for conformance
tests and the members that bootstrap clusters through the fake.  Stands apart from the
fake's layers.
"""
