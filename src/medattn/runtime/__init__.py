"""How a computation runs on the hardware at hand: numeric precision and memory format, shared by models/ and
train/ (a neutral floor below both, so neither imports the other for them)."""
