"""Example scoring systems (fraud, demand) that publish predictions and outcomes with drift."""
