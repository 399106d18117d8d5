"""Observability of a running stack: `streamrec status`, the live web page and demo storefront, scraping helpers."""
