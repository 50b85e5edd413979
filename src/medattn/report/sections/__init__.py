"""Report sections discovered at build time: every module here registers its builders on import."""
