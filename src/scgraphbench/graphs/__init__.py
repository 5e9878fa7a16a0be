"""Gene graphs: co-expression, regulatory databases, kNN, random controls."""
