"""The simulated devices: profiles, session replay, on-device scoring and the fleet actors."""
