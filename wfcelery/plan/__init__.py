"""From a validated workflow to work: the compiler (Plan), segments, the native canvas translator."""
