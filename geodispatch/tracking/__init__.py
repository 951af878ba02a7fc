"""geodispatch.tracking"""
