"""Compatibility layers: other libraries' public surfaces, backed by gws.

:mod:`gws.compat.websocket_client` is websocket-client 1.9's API: a program
written for websocket-client runs on gws after one changed import::

    import gws.compat.websocket_client as websocket
"""
