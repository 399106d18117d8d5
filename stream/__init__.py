"""Stream processing: the Faust worker that turns clickstream events into session state and fresh recommendations."""
