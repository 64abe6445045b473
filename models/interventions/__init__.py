"""What heads do: switch them off, rank them, prune and quantize the model (Heads at work).

    from models.interventions.ablation import ablated
    with ablated(loaded, [(0, 3), (2, 1)], how="zero"):      # any forward pass in the block
        run = run_attention(loaded, text)                     # ... fill_mask, next_token_predictions, token_losses

    from models.interventions.importance import head_importance, pruning_curve
    importance = head_importance(loaded)                      # [layers, heads], Michel et al. 2019
    curve = pruning_curve(loaded, importance, progress=callback)

    from models.interventions.compression import pruned_l1, quantized_int8
    pruned = pruned_l1(loaded, 0.2)                           # a new LoadedModel; the original is untouched
"""
