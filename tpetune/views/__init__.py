"""The read side drawn for people: show, plot data and the plots drawn from it. Reads the store
only."""
