"""Evaluation: closed-loop success in the built-in simulator, and offline scoring of a
policy against recorded bags. Imports everything but the ROS nodes."""
