"""geodispatch.sim"""
