"""Exchange: collections in the forms other institutions' systems take (WACZ, OCFL, …)."""
