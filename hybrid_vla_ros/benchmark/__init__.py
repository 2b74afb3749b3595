"""Benchmarks of every layer (no ROS): latency of the deployed parts per backend
(`model_latency`, ``hybrid-vla bench-model``), training-step throughput
(`training_step`, ``hybrid-vla bench-train``) and the results file they share
(`results`). The end-to-end camera-to-command benchmark runs the ROS graph and lives in
`ros.tools.bench`. A benchmark may use every offline layer; nothing imports it.
"""
