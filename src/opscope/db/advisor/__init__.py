"""The workload-driven index advisor: predicates from the workload's statements, candidate
indexes, costing with hypothetical indexes (hypopg), and a bounded choice of the set that
saves the most, net of what the indexes cost writes."""
