"""Past one machine: batch embedding on Ray Data (``raybatch``) and sharded search on Ray
Serve (``sharded`` deploys and calls the ``shards``).

Everything here needs the optional ``ray`` extra (``pip install 'latentspace[ray]'``) and
imports Ray only when called.
"""
