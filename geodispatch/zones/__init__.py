"""geodispatch.zones"""
