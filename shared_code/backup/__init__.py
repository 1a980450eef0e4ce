"""The queue worker: one backup request becomes one verified backup (copy engines, leases, copy SAS)."""
