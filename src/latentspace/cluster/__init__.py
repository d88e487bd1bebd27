"""Past one machine: batch embedding on Ray Data (``raybatch``).

Everything here needs the optional ``ray`` extra (``pip install 'latentspace[ray]'``) and
imports Ray only when called.
"""
