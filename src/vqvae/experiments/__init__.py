"""The paper's experiments, built on the library: Table 1's bits/dim comparison."""
