"""Pure mesh semantics over a set of objects: injection, mTLS resolution, authorization,
identities, flow outcomes, impact and policy rendering. No I/O."""
