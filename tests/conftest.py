"""Suite-wide test settings: hypothesis on a noisy 2-core machine."""

from hypothesis import settings

# Timing belongs in bench/: a property test must not fail because the machine is busy.
settings.register_profile("liveward", deadline=None, print_blob=True)
settings.load_profile("liveward")
