"""MTLSI-Net and its peers' interaction modules."""
