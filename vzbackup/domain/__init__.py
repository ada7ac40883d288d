"""The pure floor: guest references, manifests, restore points. Stdlib only, no I/O."""
