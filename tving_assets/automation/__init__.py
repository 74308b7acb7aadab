"""What starts runs by itself: the watched-folder sensor and the nightly schedule."""
