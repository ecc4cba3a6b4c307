"""Pure model code: frames in, frames or dataclasses out, no paths and no environment."""
