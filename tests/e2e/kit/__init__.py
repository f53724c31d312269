"""End-to-end kit shared by tests/e2e and bench/: real servers, test
backends, clients and proxy launchers, all on loopback and all stopped on exit.
"""
