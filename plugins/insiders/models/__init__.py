"""Pure model code: frames in, frames or dataclasses out, no paths, no I/O."""
