"""Quality control of crowd votes, above the arena: pure scoring, its adapter, the review service and the staff page."""
