"""Stage 2, the graph: a checked spec (or Python calls) in, a :class:`~.nodes.Graph` out.

Every value is a node defined by one SymPy index expression over its arguments' entries
(:mod:`~derive.graph.nodes`), with index labels per dim (:mod:`~derive.graph.labels`);
:mod:`~derive.graph.builder` turns spec expressions and ops into nodes.
"""
