"""Online features: the Feast repository and a fast Redis reader/writer for session state and recommendations."""
