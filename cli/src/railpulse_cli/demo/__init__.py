"""The main job: the local stack, the four services as separate processes, a simulated fleet,
live progress and a closing report (`railpulse demo`)."""
