"""The transport seam between a coordinator and its agents."""
