"""Local fakes of real model APIs, for tests, benchmarks and offline demos."""
