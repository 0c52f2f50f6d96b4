import heapq
from collections import defaultdict


def dijkstra(graph, source):
    """Return the shortest distance from source to every node of a weighted graph.

    graph maps a node to a list of (neighbour, weight) pairs with non-negative weights.
    """
    distance = defaultdict(lambda: float("inf"))
    distance[source] = 0
    queue = [(0, source)]
    while queue:
        d, node = heapq.heappop(queue)
        if d > distance[node]:
            continue
        for neighbour, weight in graph.get(node, []):
            candidate = d + weight
            if candidate < distance[neighbour]:
                distance[neighbour] = candidate
                heapq.heappush(queue, (candidate, neighbour))
    return dict(distance)


class LRUCache:
    def __init__(self, capacity):
        self.capacity = capacity
        self.items = {}
        self.order = []

    def get(self, key):
        if key not in self.items:
            return None
        self.order.remove(key)
        self.order.append(key)
        return self.items[key]
