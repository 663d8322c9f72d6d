"""The officer's own pages: "Mina ärenden"."""
